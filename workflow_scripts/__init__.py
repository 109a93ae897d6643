"""What the workflow's rules run: one module per stage concern, each with pure functions and a
thin entry point (``if __name__ == "__main__"``) for Snakemake's ``script:`` directive."""
