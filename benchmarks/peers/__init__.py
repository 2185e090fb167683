"""What a user would pick instead of himo, written as that library's own documentation shows, for the speed benchmark."""
