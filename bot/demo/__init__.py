"""What the demo and the tests share (not used in production): a real public-inbox archive on 127.0.0.1
(localinbox.py), the one series writer that commits patches and writes them as mail the way authors post
(writer.py), and the bundled multi-revision series on top of the kernel tree (series.py)."""
