# One image for both binaries; docker-compose picks the command.
FROM rust:1-bookworm AS build
WORKDIR /src
# The whole repository (less .dockerignore): the gateway compiles in the
# checked-in web client web/dist/ (include_bytes!), so no Node here.
COPY . .
RUN cargo build --release --locked -p gateway -p worker

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/gateway /src/target/release/worker /usr/local/bin/
ENV LOG_FORMAT=json
EXPOSE 8080
CMD ["gateway"]
