"""The jobs' drivers, read top to bottom: each runs its stages in order, handing the parallel
work to actors/ (Ray's tasks, actor pools and Ray Train) and the rest to the library core."""
