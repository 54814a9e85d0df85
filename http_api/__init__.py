"""HTTP glue around the BentoML service: the original API's routes, request parsing and access control."""
