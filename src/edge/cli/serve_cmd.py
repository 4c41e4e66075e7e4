"""``edge serve``: the web demo and one exported model over HTTP (``edge.serve``); Ctrl-C stops it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edge.cli.app import app, epilog, examples
from edge.serve import DEFAULT_HOST, DEFAULT_PORT

EPILOG = epilog(
    "The page (web_demo/) runs the model in the browser with onnxruntime-web (WebAssembly): camera and photo "
    "picker, top-3, latency, the model's facts, all read from the model's own metadata. From an export or run "
    "directory it serves the ONNX model: int8 when it passed the gate, else fp16, else fp32 (--quantize picks). "
    "Only the page and that model are served. The first run builds the page's runtime from the npm registry "
    "(needs Node.js and npm once; `make web-demo` does the same).",
    examples(
        "edge serve runs/flowers/export                  # http://127.0.0.1:8000/",
        "edge serve runs/flowers --host 0.0.0.0          # also the LAN URL for a phone",
        "edge serve runs/flowers/export --quantize fp32 --port 8080",
    ),
)


@app.command(no_args_is_help=True, epilog=EPILOG)
def serve(
    source: Path = typer.Argument(..., metavar="EXPORT_DIR_OR_MODEL", help="An export directory, a run directory (its export/), or an .onnx file from edge export."),
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to listen on; 0.0.0.0 lets phones on the same network open the page."),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="Port to listen on (0: any free port)."),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="Serve this kind (int8, fp16, fp32) from an export directory instead of the default choice."),
    app_dir: Optional[Path] = typer.Option(None, "--app", help="The web_demo folder (default: ./web_demo, else the one beside this edge).", show_default=False),
) -> None:
    """Serve the in-browser demo page with an exported model; prints the URL(s) to open."""
    from edge.console import console
    from edge.serve import SECURE_CONTEXT_NOTE, open_server

    server = open_server(source, host, port, quantize=quantize, app_dir=app_dir,
                         say=lambda text: console.print(f"[dim]{text}[/]", highlight=False))
    chosen = server.chosen
    spec = chosen.spec
    h, w = spec.input_size
    console.print(f"Serving [bold]{chosen.path.name}[/] ({chosen.fmt.display_name} {chosen.quantize}, gate: "
                  f"{chosen.status}; {spec.num_classes} classes, {w}x{h} input) and the web demo from "
                  f"{server.app_dir}", highlight=False)
    if chosen.others:
        console.print(f"[dim]Also in the folder: {', '.join(chosen.others)} (--quantize picks another).[/]",
                      highlight=False)
    urls = server.urls()
    for what, url in urls:
        console.print(f"  {what}: [bold cyan]{url}[/]", highlight=False)
    if len(urls) == 1 and host in ("0.0.0.0", "::", ""):
        console.print("  phones on the same network: http://<this machine's LAN address>:"
                      f"{server.port}/ (no LAN address found)", highlight=False)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]Camera:[/] {SECURE_CONTEXT_NOTE.replace('PORT', str(server.port))}", highlight=False)
    console.print("Press Ctrl-C to stop.", highlight=False)
    server.serve_forever()
    console.print("Stopped.", highlight=False)
