"""`codegemma kernel install | demo`: the "CodeGemma (JAX)" kernelspec, and a demo in a real kernel."""

from __future__ import annotations

from typing import IO

from .common import CliError


def add_parser(commands) -> None:
    kernel = commands.add_parser("kernel", help="the \"CodeGemma (JAX)\" Jupyter kernel: install it, or run the demo")
    actions = kernel.add_subparsers(dest="kernel_action", required=True, metavar="ACTION")
    install = actions.add_parser("install", help="install the kernelspec (a variant with --name/--env)")
    install.add_argument("--user", action="store_true", help="for this user only (default: this environment)")
    install.add_argument("--prefix", metavar="DIR", help="under DIR/share/jupyter/kernels")
    install.add_argument("--name", default="codegemma", help="the kernelspec's name (default: codegemma)")
    install.add_argument("--display-name", default="CodeGemma (JAX)", help="the name shown in the launcher")
    install.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                         help="an environment variable for the kernel, e.g. JAX_PLATFORMS=tpu (repeatable)")
    actions.add_parser("demo", help="a real kernel: one completion over the comm and one %%%%codegemma cell, timed")


def cmd_kernel(args, out: IO[str]) -> int:
    if args.kernel_action == "demo":
        from .kernel_demo import run_demo

        return run_demo(out)
    from ..kernel import kernelspec

    try:
        env = kernelspec.parse_env(args.env)
    except ValueError as e:
        raise CliError(str(e)) from None
    where = kernelspec.install(name=args.name, display_name=args.display_name, env=env, user=args.user,
                               prefix=args.prefix)
    print(f"installed kernelspec {args.name!r} ({args.display_name}) in {where}", file=out)
    return 0
