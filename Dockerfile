# alarmd in a container: the single executable on a minimal runtime image, as a non-root user,
# its KV file on a volume. docs/operations.md#in-a-container has the recipes.
#
#   docker build -t alarmd .
#   docker run -d -p 8080:8080 -v alarmd-data:/data \
#     -e ALARMD_JWT_SECRET="$(openssl rand -base64 48)" alarmd

# The Deno that builds it: the version the tests and the release binaries use.
ARG DENO_VERSION=2.9.6

FROM denoland/deno:${DENO_VERSION} AS build
WORKDIR /src
# What `deno task compile` reads (scripts/compile.ts lists the flags and --include paths), and
# nothing else: .dockerignore keeps the rest of the repository out of the build context.
COPY deno.json deno.lock main.ts ./
COPY scripts/compile.ts scripts/
COPY src/ src/
COPY web/ web/
RUN deno task compile --output /out/alarmd && /out/alarmd --version
# The volume's mount point, made here because the runtime image has no shell to make it.
RUN mkdir -p /out/data

# glibc and libgcc, which the executable links against, and no shell, package manager or curl.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/alarmd /usr/local/bin/alarmd
COPY --from=build --chown=65532:65532 /out/data /data
ENV ALARMD_KV_PATH=/data/alarmd.kv \
    ALARMD_HOST=0.0.0.0 \
    ALARMD_PORT=8080
# distroless's "nonroot" user, by number so that runAsNonRoot checks can see it.
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080
# Liveness, not readiness: a shared outage (Redis, a key server) must not get every container
# restarted at once. `alarmd health` gives up after 5 s and prints why.
HEALTHCHECK --interval=10s --timeout=10s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/alarmd", "health"]
# SIGTERM (docker stop) ends streams cleanly and exits 0 within 10 s: docker's default grace.
ENTRYPOINT ["/usr/local/bin/alarmd"]
CMD ["serve"]
