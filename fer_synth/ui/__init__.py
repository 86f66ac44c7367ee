"""The presentation layer: what a person sees, used by both packages' command lines and reports.

console (rich consoles, progress bars, the click group with the error boundary), log (logging setup for the command
lines, the rank-zero filter, native libraries' stderr), html (static report pages), plots (matplotlib figures).
It imports only :mod:`fer_synth.core`; the data contract never imports it.
"""
