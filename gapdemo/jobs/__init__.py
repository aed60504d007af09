"""Everything the page starts, in one queue, each job in a process of its own (see scheduler.py)."""
