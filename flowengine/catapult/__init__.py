"""The Bandwidth Catapult v1 API: the REST client (``client``) and callback event parsing (``events``)."""
