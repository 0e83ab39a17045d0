# Multi-stage build of the `crm` binary.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p crm-server

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/crm /usr/local/bin/crm
USER nobody
EXPOSE 8080
ENV CRM_BIND=0.0.0.0:8080
ENTRYPOINT ["crm"]
CMD ["serve"]
