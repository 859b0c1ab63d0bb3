"""Reading checkpoints safely, converting foreign key layouts, and saving with provenance."""
