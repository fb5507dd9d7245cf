#!/bin/sh
# The image's install steps (Dockerfile, builder stage), kept as a script so tests/test_deploy.py can
# run exactly the same steps into a fresh virtualenv.
#
# Usage: docker-install.sh deps SOURCE_DIR WHEELS
#        docker-install.sh app  SOURCE_DIR WHEELS PREFIX
#   deps   wheels of every dependency (and of the build backend) into WHEELS; reads only
#          SOURCE_DIR/pyproject.toml, so the image build caches this step until the dependencies
#          change, not on every code change
#   app    builds the project's own wheel and installs it with its dependencies from WHEELS only
#          (no index: nothing is downloaded here) into PREFIX; the Dockerfile uses /install and
#          copies it to /usr/local
# Environment:
#   PYTHON      interpreter whose pip installs (default: python3); its path goes into the
#               cwa2mqtt script's #! line, so it must be the interpreter of the final image
#   EXTRAS      optional extras, comma-separated (default: iwa, for `cwa.auth: iwa`)
set -eu

usage='usage: docker-install.sh deps SOURCE_DIR WHEELS | app SOURCE_DIR WHEELS PREFIX'
mode=${1:?$usage}
src=${2:?$usage}
wheels=${3:?$usage}
python=${PYTHON:-python3}
extras=${EXTRAS-iwa}

case $mode in
deps)
  requirements=$(mktemp)
  trap 'rm -f "$requirements"' EXIT
  # The dependency lists straight from pyproject.toml (tomllib: Python 3.11+): no copy of them to
  # keep in step, and no source code needed yet.
  "$python" - "$src/pyproject.toml" "$extras" >"$requirements" <<'EOF'
import sys
import tomllib

with open(sys.argv[1], "rb") as file:
    document = tomllib.load(file)
project = document["project"]
lines = list(project["dependencies"]) + list(document["build-system"]["requires"])
for extra in filter(None, sys.argv[2].split(",")):
    lines += project["optional-dependencies"][extra]
print("\n".join(lines))
EOF
  # --prefer-binary: take the manylinux wheels (lxml's bundles libxml2) over a newer sdist, so
  # neither a compiler in the builder nor extra shared libraries in the slim image are needed.
  "$python" -m pip wheel --quiet --prefer-binary --wheel-dir "$wheels" -r "$requirements"
  ;;
app)
  prefix=${4:?$usage}
  own=$(mktemp -d)
  trap 'rm -rf "$own"' EXIT
  # --no-index: the build backend and every dependency come from the deps step's wheels, so a
  # dependency missing there fails the build here instead of being fetched unpinned.
  "$python" -m pip wheel --quiet --no-deps --no-index --find-links "$wheels" --wheel-dir "$own" "$src"
  if [ -n "$extras" ]; then
    requirement="cwa2mqtt[$extras]"
  else
    requirement="cwa2mqtt"
  fi
  "$python" -m pip install --quiet --no-index --find-links "$own" --find-links "$wheels" \
    --prefix "$prefix" --no-warn-script-location "$requirement"

  # Fail the build, not the container: the installed entry point must start and know its version.
  site=$("$python" -c 'import sys, sysconfig
print(sysconfig.get_path("purelib", vars={"base": sys.argv[1], "platbase": sys.argv[1]}))' "$prefix")
  PYTHONPATH=$site "$prefix/bin/cwa2mqtt" --version
  ;;
*)
  echo "$usage" >&2
  exit 2
  ;;
esac
