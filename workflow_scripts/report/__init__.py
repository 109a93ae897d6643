"""Stage 5: figures (drawn from score tables only) and the HTML report."""
