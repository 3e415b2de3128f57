"""The synthetic city: the generator of devices and history (seed) and the live simulator."""
