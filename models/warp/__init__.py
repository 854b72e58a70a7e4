"""Copy by construction: the previous frame moved by the action (DESIGN §5a).

:class:`~models.warp.homography.ActionWarp` holds one learned homography per action and resamples
a frame through it; :mod:`models.warp.fit` fits those homographies to consecutive true frames.
"""

from models.warp.homography import ActionWarp, WarpConfig, load_warp

__all__ = ["ActionWarp", "WarpConfig", "load_warp"]
