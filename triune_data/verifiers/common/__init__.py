"""Helpers the verifiers share (answer extraction, box parsing, matching and scoring, COCO AP).

Not a verifier package: `import_submodules` skips `common`, so nothing here registers anything.
"""
