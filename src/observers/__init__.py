"""Container discovery, kernel-file readers and samplers for finemon.

Discovery turns the cgroup filesystem into a list of containers; the readers
(:mod:`observers.readers`) turn cgroup and /proc files into typed values; samplers turn two
readings into rates and emit them through the :mod:`capture` facade.
"""
