"""A small order service on lifecycle: the reference for embedding the library."""
