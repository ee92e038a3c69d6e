namespace Forkd.Core.Guest;

public sealed partial class AgentClient
{
    /// <summary>
    /// Reads '\n'-terminated reply lines of at most a given size. A peer that sends more without a newline
    /// gets <c>AgentReplyTooLarge</c> once the limit is passed, so what the host holds for one line is bounded
    /// by the limit plus one read buffer, however much the peer writes.
    /// </summary>
    internal sealed class BoundedLineReader(Stream stream, Func<long> maxBytes, string target)
    {
        private readonly byte[] _buffer = new byte[64 * 1024];
        private int _start;
        private int _end;

        /// <summary>The next line without its '\n'; at EOF an unterminated last line, then null.</summary>
        public async Task<byte[]?> ReadLineAsync(CancellationToken cancellationToken)
        {
            // Small pieces (never the large-object heap) joined once the line is complete.
            List<byte[]>? pieces = null;
            long total = 0;
            while (true)
            {
                if (_start == _end)
                {
                    _start = 0;
                    _end = await stream.ReadAsync(_buffer, cancellationToken).ConfigureAwait(false);
                    if (_end == 0)
                    {
                        return pieces is null ? null : Join(pieces, total);
                    }
                }

                var available = _buffer.AsSpan(_start, _end - _start);
                var newline = available.IndexOf((byte)'\n');
                var take = newline < 0 ? available.Length : newline;
                var limit = maxBytes();
                if (total + take > limit)
                {
                    throw TooLarge(target, limit);
                }

                (pieces ??= []).Add(available[..take].ToArray());
                total += take;
                _start += newline < 0 ? available.Length : newline + 1;
                if (newline >= 0)
                {
                    return Join(pieces, total);
                }
            }
        }

        private static byte[] Join(List<byte[]> pieces, long total)
        {
            if (pieces.Count == 1)
            {
                return pieces[0];
            }

            var line = new byte[total];
            var at = 0;
            foreach (var piece in pieces)
            {
                piece.CopyTo(line, at);
                at += piece.Length;
            }

            return line;
        }
    }

    internal static ForkdException TooLarge(string target, long limit) =>
        new("AgentReplyTooLarge", ForkdErrorKind.ProtocolError,
            $"the agent at {target} sent a reply longer than {limit} bytes; the connection was dropped", target)
        {
            Hint = "Raise -MaxReplyBytes if the result really is that big, or return less (write large data to a file in the guest and read it in parts).",
        };
}
