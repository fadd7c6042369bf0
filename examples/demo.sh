#!/bin/sh
# The demo child: prints its config, then keeps running until stopped.
# Run it under the manager (see README), then edit examples/demo.conf.
conf="${1:-examples/demo.conf}"
echo "demo: started as pid $$; $conf says:"
sed 's/^/demo:   | /' "$conf"
trap 'echo "demo: stopping cleanly"; exit 0' TERM INT
trap 'echo "demo: got SIGHUP"' HUP
# sleep in the background + wait: a trap runs at once, not after the sleep.
while :; do
    sleep 1 &
    wait $!
done
