"""Build the optional C extension ``infocam._maxbox`` (everything else is in pyproject.toml).

``optional=True``: without a C compiler the install still succeeds and ``MaxBoxAccEvaluator``
falls back to its OpenCV path (same scores, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "infocam._maxbox",
            sources=["src/infocam/_maxbox.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
