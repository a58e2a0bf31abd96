"""Cell lots: manufacturing record, bags with ISBT 128-compatible identifiers, storage (issue 4)."""
