"""The version of flowengine, read by the build backend and by ``flowengine --version``."""

__version__ = "0.1.0.dev0"
