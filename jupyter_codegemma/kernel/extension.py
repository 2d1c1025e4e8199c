"""`%load_ext jupyter_codegemma`: the settings, the engine service, the magics and the comm target."""

from __future__ import annotations

from .worker import Service
from .settings import CodeGemma

_loaded: dict = {}  # what load() set up in this process, for unload()


def load(ip) -> None:
    if _loaded:
        return  # loading twice (the kernelspec pre-loads it, a notebook says %load_ext again) is harmless
    from .comm import register_target
    from ..exercises.magics import ExerciseMagics
    from .magics import CodeGemmaMagics

    settings = CodeGemma(parent=ip)  # reads c.CodeGemma.* from the IPython config
    ip.configurables.append(settings)  # so %config CodeGemma... works
    service = Service(settings, namespace=lambda: ip.user_ns)
    magics = CodeGemmaMagics(ip, settings, service)
    ip.register_magics(magics)
    ip.register_magics(ExerciseMagics(ip, settings, service))
    manager = register_target(service) if getattr(ip, "kernel", None) is not None else None
    _loaded.update(ip=ip, settings=settings, service=service, comm_manager=manager, magics=magics)


def unload(ip) -> None:
    from .. import protocol

    if not _loaded:
        return
    if _loaded["comm_manager"] is not None:
        _loaded["comm_manager"].unregister_target(protocol.TARGET, None)
    if _loaded["settings"] in ip.configurables:
        ip.configurables.remove(_loaded["settings"])
    _loaded["magics"].conversation.close()  # the hook that remembers failing cells
    _loaded["service"].shutdown()
    _loaded.clear()
