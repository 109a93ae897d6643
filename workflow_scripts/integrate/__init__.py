"""Stage 2: every integration method and control, run by one entry point (``run``)."""
