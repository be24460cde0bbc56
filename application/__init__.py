"""Use cases of celltable, written against the ports of :mod:`celltable.domain.ports`."""
