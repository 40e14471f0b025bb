"""Log files inside containers, declared by labels: finding, opening and following them,
never outside the container.

Modules:

- :mod:`.container_root`: find a container's main process on the host by its
  cgroup, and open the container's root directory (kept as an fd).
- :mod:`.openat2`: open a path inside that root as the container resolves it
  (``openat2(2)`` with ``RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS``), and open
  a regular file without ever blocking on a FIFO or touching a device.
- :mod:`.rootglob`: expand a declared glob inside the root, opening at most a
  given number of regular files and reporting what was skipped.
- :mod:`.identity`: a file named by ``(dev, inode)``, and a read position in it.
- :mod:`.tail`: follow one declared path through rename and copytruncate rotation.
- :mod:`.registry`: the read positions per file identity, kept on disk.
"""
