"""First-party datasets: the embedded ``mini`` world and the REGEN release files."""
