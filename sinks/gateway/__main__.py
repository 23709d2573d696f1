from sinks.gateway.server import main

main()
