// A plain EventSource from the `eventsource` npm package, left to reconnect on its own.
// Usage: node sse_client.mjs URL COUNT
// Prints one JSON line per open ({"open": n}) and per message ({"id": lastEventId, "data": {...}}),
// and exits after COUNT messages that are not pings.
import { EventSource } from 'eventsource';

const [url, count] = [process.argv[2], Number(process.argv[3])];
let opens = 0;
let received = 0;
const source = new EventSource(url);
source.onopen = () => {
  opens += 1;
  console.log(JSON.stringify({ open: opens }));
};
source.onmessage = (event) => {
  const data = JSON.parse(event.data);
  if (data.type === 'ping') return;
  console.log(JSON.stringify({ id: event.lastEventId, data }));
  received += 1;
  if (received >= count) {
    source.close();
    process.exit(0);
  }
};
source.onerror = () => console.log(JSON.stringify({ error: true }));
