"""Build hook: the pages show the figures committed under ``benchmarks/results/``.

The pages link those figures as ``../benchmarks/results/<file>`` so that they also show where the Markdown is
read on the repository's web page; the site copies them to ``results/`` and the links are rewritten to match.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

RESULTS = "benchmarks/results"
SITE_FOLDER = "results"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = Path(config.config_file_path).parent
    for path in sorted((root / RESULTS).rglob("*.png")):
        relative = path.relative_to(root / RESULTS).as_posix()
        files.append(File.generated(config, f"{SITE_FOLDER}/{relative}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    page_folder = posixpath.dirname(page.file.src_uri)
    in_repository = posixpath.relpath(RESULTS, posixpath.join("docs", page_folder))
    on_site = posixpath.relpath(SITE_FOLDER, page_folder or ".")
    return markdown.replace(f"]({in_repository}/", f"]({on_site}/")
