#!/bin/sh
# The image's install step (Dockerfile, builder stage), kept as a script so tests/test_deploy.py can
# run exactly the same step into a fresh virtualenv.
#
# Usage: docker-install.sh SOURCE_DIR PREFIX
#   SOURCE_DIR  the project (pyproject.toml, README.md, bridge/)
#   PREFIX      where to install; the Dockerfile uses /install and copies it to /usr/local
# Environment:
#   PYTHON      interpreter whose pip installs (default: python3); its path goes into the
#               cwa2mqtt script's #! line, so it must be the interpreter of the final image
#   EXTRAS      optional extras, comma-separated (default: iwa, for `cwa.auth: iwa`)
set -eu

src=${1:?usage: docker-install.sh SOURCE_DIR PREFIX}
prefix=${2:?usage: docker-install.sh SOURCE_DIR PREFIX}
python=${PYTHON:-python3}
extras=${EXTRAS-iwa}

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT

# Wheels first, then an install from those wheels only: what gets installed is exactly what was
# built and resolved here, and a build that needs a compiler fails in this step, not at run time.
# --prefer-binary: take the manylinux wheels (which bundle libxml2 for lxml) over a newer sdist,
# so the slim final image needs no extra shared libraries.
if [ -n "$extras" ]; then
  requirement="$src[$extras]"
else
  requirement="$src"
fi
"$python" -m pip wheel --quiet --prefer-binary --wheel-dir "$wheels" "$requirement"
"$python" -m pip install --quiet --no-index --find-links "$wheels" --prefix "$prefix" \
  --no-warn-script-location "$wheels"/*.whl

# Fail the build, not the container: the installed entry point must start and know its version.
site=$("$python" -c 'import sys, sysconfig
print(sysconfig.get_path("purelib", vars={"base": sys.argv[1], "platbase": sys.argv[1]}))' "$prefix")
PYTHONPATH=$site "$prefix/bin/cwa2mqtt" --version
