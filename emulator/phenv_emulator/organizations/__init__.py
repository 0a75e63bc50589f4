"""Projects, organizations and their members."""
