"""Long studies behind the figures in docs/ (not an asv suite): `python -m studies.NAME`."""
