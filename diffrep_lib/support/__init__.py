"""Support: what every layer may use and that knows nothing of diffusion — compute profiles, disk memoisation,
claims, the cache folder and runtime switches, forward hooks. Imports nothing else of the library."""
from . import claims, hooks, memo, profile, runtime
