"""Remote work over SSH: one connection hub shared by polls, tails and file transfers."""
