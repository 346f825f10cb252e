"""The register_model stage."""
