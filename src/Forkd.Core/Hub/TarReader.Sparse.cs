namespace Forkd.Core.Hub;

/// <summary>GNU sparse maps: old GNU (type <c>S</c> with extension blocks) and PAX 1.0 (map at the start of the data).</summary>
public sealed partial class TarReader
{
    /// <summary>Old GNU: four ranges in the header, 21 more in each extension block while "isextended" is set.</summary>
    private TarSparseMap ReadOldGnuSparseMap()
    {
        var map = new TarSparseMap(ParseNumber(_block.AsSpan(483, 12), "sparse real size"), SparseInvalid);
        var header = (byte[])_block.Clone();
        var ended = AddOldGnuRanges(map, header.AsSpan(386, 4 * 24));
        var extended = header[482] != 0;
        while (extended)
        {
            if (!ReadBlock(allowEof: false))
            {
                throw Truncated("a sparse extension header is cut short");
            }

            if (ended)
            {
                throw SparseInvalid("an extension header follows a map that had ended");
            }

            ended = AddOldGnuRanges(map, _block.AsSpan(0, 21 * 24));
            extended = _block[504] != 0;
        }

        return map;
    }

    /// <summary>Adds the 24-byte (offset, size) slots; an empty slot ends the map. True when it ended.</summary>
    private bool AddOldGnuRanges(TarSparseMap map, ReadOnlySpan<byte> slots)
    {
        for (var i = 0; i < slots.Length; i += 24)
        {
            if (slots[i + 12] == 0)
            {
                return true;
            }

            map.Add(ParseNumber(slots.Slice(i, 12), "sparse offset"), ParseNumber(slots.Slice(i + 12, 12), "sparse size"));
        }

        return false;
    }

    private void ReadSparseMapFromData(TarSparseMap map)
    {
        var text = new System.Text.StringBuilder();
        long? count = null;
        long? pendingOffset = null;
        var numbers = 0L;
        while (count is null || numbers < 1 + (2 * count.Value))
        {
            if (_remaining < TarHeaderWriter.BlockSize || !ReadDataBlock())
            {
                throw SparseInvalid("the map in the data ends early");
            }

            foreach (var b in _block)
            {
                if (b == (byte)'\n')
                {
                    var value = map.Number(text.ToString(), "map number");
                    text.Clear();
                    numbers++;
                    if (count is null)
                    {
                        count = value <= TarSparseMap.MaxRanges ? value : throw SparseInvalid($"{value} ranges");
                    }
                    else if (pendingOffset is null)
                    {
                        pendingOffset = value;
                    }
                    else
                    {
                        map.Add(pendingOffset.Value, value);
                        pendingOffset = null;
                    }

                    if (numbers == 1 + (2 * count.Value))
                    {
                        break;
                    }
                }
                else if (b == 0 && text.Length == 0)
                {
                    continue; // padding after the last number
                }
                else if (text.Length > 20)
                {
                    throw SparseInvalid("a map number is too long");
                }
                else
                {
                    text.Append((char)b);
                }
            }
        }
    }

    private bool ReadDataBlock()
    {
        ReadExactly(_block);
        _remaining -= TarHeaderWriter.BlockSize;
        return true;
    }
}
