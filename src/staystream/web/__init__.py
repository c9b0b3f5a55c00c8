"""The pages people use: the traveler's search page (`/`) and the operator's dashboard (`/ops`)."""
