"""Rendering MuJoCo envs on a machine without a display: the OpenGL back-end, settled early.

MuJoCo draws through one of three OpenGL back-ends, named by the ``MUJOCO_GL`` environment
variable: ``glfw`` (a window system, the default), ``egl`` (headless, on a GPU or Mesa) and
``osmesa`` (headless, in software). On a headless machine the default fails only when the
first frame is drawn, and a back-end whose library is not installed makes ``import mujoco``
itself fail with a traceback. Hence two checks:

* :func:`check_gl_setting`, run when :mod:`metarl` is imported, before anything imports
  mujoco: a ``MUJOCO_GL`` that cannot work here is set aside with one warning line, so that the
  commands that never render (training, evaluation) are not broken by it;
* :func:`prepare_rendering`, run by ``adapt_rl.py --video`` before its evaluation: the
  back-end that renders here -- the user's ``MUJOCO_GL``, else EGL, else OSMesa, each tried
  in a fresh process -- is put into ``MUJOCO_GL``, or one clear error says why none does.

Gymnasium's MuJoCo renderer reads ``MUJOCO_GL`` when it creates its OpenGL context (at the
first frame), and PyOpenGL, which settles its platform once imported, is not imported before
then; so the variable still decides the back-end when it is set after ``import mujoco``.
"""

from __future__ import annotations

import ctypes.util
import os
import platform
import subprocess
import sys

from metarl.errors import MetaRLError

LIBRARIES = {"egl": ("EGL", "libegl1"), "osmesa": ("OSMesa", "libosmesa6")}
"""The headless back-ends: the library each needs, and the Debian/Ubuntu package holding it."""

_KNOWN = {"", "glfw", "glx", "egl", "osmesa", "enable", "enabled", "on", "true", "1",
          "disable", "disabled", "off", "false", "0"}
"""The values of ``MUJOCO_GL`` that mujoco accepts on Linux (any other fails its import)."""

_set_aside: dict[str, str] = {}
"""The user's ``MUJOCO_GL`` that :func:`check_gl_setting` took out, and why."""

_PROBE = """
import mujoco
model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody></mujoco>")
with mujoco.Renderer(model, 8, 8) as renderer:
    renderer.update_scene(mujoco.MjData(model))
    renderer.render()
"""
"""A first frame of a one-sphere model, drawn in a fresh process with the back-end to try."""


def missing_library(backend: str) -> str | None:
    """Why the headless ``backend`` cannot load here ("no OSMesa library is installed: apt-get
    install libosmesa6"), or None when its library is found (or it needs none of its own)."""
    library, package = LIBRARIES.get(backend, (None, None))
    if library is None or ctypes.util.find_library(library) is not None:
        return None
    return f"no {library} library is installed: apt-get install {package}"


def check_gl_setting() -> None:
    """Set aside a ``MUJOCO_GL`` that would make ``import mujoco`` fail (an unknown value, or a
    back-end whose library is missing), with one warning line; anything else is left as it is.
    Run before mujoco is imported; :func:`prepare_rendering` then refuses to render with it."""
    value = os.environ.get("MUJOCO_GL")
    if value is None:
        return
    backend = value.lower().strip()
    reason = missing_library(backend)
    if reason is None and platform.system() == "Linux" and backend not in _KNOWN:
        reason = "MuJoCo knows egl, osmesa and glfw"
    if reason is None:
        return
    del os.environ["MUJOCO_GL"]
    _set_aside.update(value=value, reason=reason)
    print(f"warning: MUJOCO_GL={value} cannot work here ({reason}); it is ignored, so nothing "
          "can be rendered with it", file=sys.stderr)


def uses_opengl(env_id: str) -> bool:
    """Whether ``env_id`` is drawn by MuJoCo (through OpenGL); Navigation2D draws with numpy.
    An id metarl does not register is assumed to need OpenGL."""
    from metarl.envs import ENV_IDS, LocomotionTaskEnv

    known = ENV_IDS.get(env_id)
    return known is None or issubclass(known[0], LocomotionTaskEnv)


def probe(backend: str, timeout_s: float = 120.0) -> str | None:
    """Why ``backend`` cannot draw a frame here, or None when it can (tried in a fresh process:
    a back-end that fails can leave OpenGL unusable in the process that tried it)."""
    missing = missing_library(backend)
    if missing is not None:
        return missing
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                              timeout=timeout_s, env={**os.environ, "MUJOCO_GL": backend})
    except subprocess.TimeoutExpired:
        return f"no frame within {timeout_s:.0f} s"
    if proc.returncode == 0:
        return None
    last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return last[:200]


def prepare_rendering(env_id: str, flag: str = "--video") -> str | None:
    """Make sure ``env_id`` can be rendered before any work is done, and return the OpenGL
    back-end set in ``MUJOCO_GL`` for it (None: the env needs none).

    The user's ``MUJOCO_GL`` is tried alone; without one, EGL and then OSMesa, and the first
    that draws a frame is set. Otherwise a :class:`MetaRLError` names each back-end's reason
    and what to install."""
    if not uses_opengl(env_id):
        return None
    if _set_aside:
        raise MetaRLError(f"{flag}: MUJOCO_GL={_set_aside['value']} cannot render {env_id} here "
                          f"({_set_aside['reason']}); unset MUJOCO_GL to let EGL or OSMesa be "
                          f"picked where one works, or drop {flag} (nothing was evaluated)")
    chosen = os.environ.get("MUJOCO_GL")
    failures: dict[str, str] = {}
    for backend in [chosen] if chosen else list(LIBRARIES):
        reason = probe(backend)
        if reason is None:
            os.environ["MUJOCO_GL"] = backend
            return backend
        failures[backend] = reason
    if chosen:
        raise MetaRLError(f"{flag}: cannot render {env_id} with MUJOCO_GL={chosen} "
                          f"({failures[chosen]}); set MUJOCO_GL to a back-end that works here "
                          f"(egl, osmesa) or unset it, or drop {flag} (nothing was evaluated)")
    tried = "; ".join(f"{b}: {why}" for b, why in failures.items())
    raise MetaRLError(f"{flag}: cannot render {env_id} on this machine: no headless OpenGL "
                      f"back-end works ({tried}); install EGL or OSMesa, or drop {flag} "
                      "(nothing was evaluated)")
