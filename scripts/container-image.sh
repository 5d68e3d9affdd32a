#!/usr/bin/env bash
# Builds the AICPW test image without a registry: a root filesystem of busybox-static (a shell
# and the usual tools, nothing else), packed as a `docker save` archive whose bytes depend only
# on the busybox binary (fixed times, owners and order), so its image id, the sha256 of its
# config, is the same wherever the same busybox is packed.
#
#   bash scripts/container-image.sh [ARCHIVE [VARIANT]]
#
# Writes ARCHIVE (default target/aicpw-busybox.tar), loads it into the local Docker Engine when
# one answers, and prints the image reference a task names: `aicpw/busybox@sha256:<image id>`.
# A VARIANT (tests of loading archives) labels the image with it, so it has an id of its own,
# and is not loaded. Needs busybox-static (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
archive="$(realpath -m "${1:-target/aicpw-busybox.tar}")"
variant="${2:-}"
if [[ ! "${variant}" =~ ^[A-Za-z0-9._-]*$ ]]; then
  echo "container-image.sh: a variant is letters, digits, '.', '_' and '-'" >&2
  exit 1
fi
busybox=/bin/busybox
# `ldd` succeeds only on a dynamically linked program, which would not start in the image.
if ! "${busybox}" --list >/dev/null 2>&1 || ldd "${busybox}" >/dev/null 2>&1; then
  echo "container-image.sh: ${busybox} is not a static busybox: apt-get install busybox-static" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
root="${work}/root"
mkdir -p "${root}/bin" "${root}/etc" "${root}/task/in" "${root}/task/out" "${root}/tmp"
cp "${busybox}" "${root}/bin/busybox"
for applet in $("${busybox}" --list); do
  [[ "${applet}" == busybox ]] || ln -s busybox "${root}/bin/${applet}"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/tmp:/bin/sh\n' >"${root}/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"${root}/etc/group"
chmod 1777 "${root}/tmp"
tar_flags=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu)
tar -C "${root}" "${tar_flags[@]}" -cf "${work}/layer.tar" .
layer_id="$(sha256sum "${work}/layer.tar" | cut -d' ' -f1)"
config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"1970-01-01T00:00:00Z\",\
\"config\":{\"Env\":[\"PATH=/bin\"],\"WorkingDir\":\"/task/in\",\"Cmd\":[\"/bin/sh\"],\
\"Labels\":{\"aicpw.variant\":\"${variant}\"}},\
\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:${layer_id}\"]},\
\"history\":[{\"created\":\"1970-01-01T00:00:00Z\",\"created_by\":\"aicpw container-image.sh\"}]}"
printf '%s' "${config}" >"${work}/config.json"
image_id="$(sha256sum "${work}/config.json" | cut -d' ' -f1)"
pack="${work}/pack"
mkdir -p "${pack}/${layer_id}"
mv "${work}/layer.tar" "${pack}/${layer_id}/layer.tar"
mv "${work}/config.json" "${pack}/${image_id}.json"
printf '[{"Config":"%s.json","RepoTags":["aicpw/busybox:%s"],"Layers":["%s/layer.tar"]}]' \
  "${image_id}" "${variant:-latest}" "${layer_id}" >"${pack}/manifest.json"
mkdir -p "$(dirname "${archive}")"
tar -C "${pack}" "${tar_flags[@]}" -cf "${archive}" .
if [[ -z "${variant}" ]] && docker info >/dev/null 2>&1; then
  docker load -q -i "${archive}" >/dev/null
fi
echo "aicpw/busybox@sha256:${image_id}"
