"""Small shared helpers: errors, atomic files, provenance."""
