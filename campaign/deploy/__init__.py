"""Running a campaign on a Hugging Face Space: the Space folder, its deployment, and the Hub backup store."""
