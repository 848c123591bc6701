"""The lake: table schemas, the one coercion layer, flattening raw pages, staging and atomic publication."""
