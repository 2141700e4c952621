"""Server-rendered public pages: the blog index, the reader page, the newsroom placeholder and the 404 page."""
