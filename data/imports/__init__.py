"""`persona data import`: chat logs and datasets in other formats, as this project's records."""
