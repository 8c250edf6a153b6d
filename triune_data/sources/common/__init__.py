"""Helpers the source adapters share (field parsing, table readers, ids, the synthetic renderer).

Not an adapter package: `import_submodules` skips `common`, so nothing here registers anything.
"""
