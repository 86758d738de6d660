from tests.peers.fixtures import *  # noqa
