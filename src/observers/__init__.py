"""Container discovery and kernel-file readers for finemon.

Discovery turns the cgroup filesystem into a list of containers; readers turn cgroup and /proc
files into typed values; samplers turn two readings into rates and emit them through the
:mod:`capture` facade.
"""
