-- Closed-loop create throughput for one endpoint, with wrk (Debian's `wrk` package):
--   ALARMD_BENCH_TOKEN="$(deno run -A main.ts token --sub bench --publish)" \
--     wrk -t1 -c64 -d5s -s bench/wrk_post.lua http://127.0.0.1:8080/api/v1/alarms
-- (with the server's ALARMD_JWT_SECRET in the environment of the token command).
wrk.method = "POST"
wrk.body = '{"userId":"u1","type":"bench","data":{"t":1}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ALARMD_BENCH_TOKEN")
