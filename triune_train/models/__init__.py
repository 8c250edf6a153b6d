"""Model families, loading (local folder, Hub id or tiny offline build) and freezing."""
