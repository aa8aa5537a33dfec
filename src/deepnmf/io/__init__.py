"""File formats: model folders (safetensors + JSON)."""
