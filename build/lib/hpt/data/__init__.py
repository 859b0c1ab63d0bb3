"""Images from folders and file lists, the dataset's own pixel statistics, and view policies."""
