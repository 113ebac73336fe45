using System.Globalization;
using System.Text;

namespace TwinSeal.Cli.Demo;

/// <summary>What the generator produced and the answer the match must give.</summary>
public sealed record GeneratedData(string Party1Csv, string Party2Csv, int Rows, long ExpectedMatches);

/// <summary>
/// Seeded sample tables for the demo: party 1 holds customers with their spend, party 2 holds newsletter
/// subscribers; a chosen share of party 2's e-mail addresses are also party 1's, so the expected match count is known exactly.
/// </summary>
public static class DataGenerator
{
    /// <summary>Writes party1.csv and party2.csv into <paramref name="directory"/>.</summary>
    public static GeneratedData Generate(string directory, int rows, double overlap, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        if (overlap is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(overlap), "Overlap is between 0 and 1.");
        Directory.CreateDirectory(directory);
        var rng = new Random(seed);
        var shared = (int)Math.Round(rows * overlap, MidpointRounding.AwayFromZero);
        // Party 1 ids 0..rows-1; party 2 takes `shared` distinct ids from party 1 and fills up with ids no one else has.
        var party1Ids = Enumerable.Range(0, rows).ToArray();
        rng.Shuffle(party1Ids);
        var party2Ids = party1Ids.Take(shared).Concat(Enumerable.Range(rows, rows - shared)).ToArray();
        rng.Shuffle(party2Ids);
        var segments = new[] { "bronze", "silver", "gold", "platinum" };
        var p1 = Path.Combine(directory, "party1.csv");
        var p2 = Path.Combine(directory, "party2.csv");
        using (var w = new StreamWriter(p1, false, new UTF8Encoding(false), 1 << 16))
        {
            w.Write("customer_id,email,spend_eur\n");
            foreach (var id in party1Ids)
                w.Write(string.Create(CultureInfo.InvariantCulture, $"C{id:D8},{Email(id)},{rng.Next(1, 500_000) / 100.0:F2}\n"));
        }
        using (var w = new StreamWriter(p2, false, new UTF8Encoding(false), 1 << 16))
        {
            w.Write("email,segment,visits\n");
            foreach (var id in party2Ids)
                w.Write(string.Create(CultureInfo.InvariantCulture, $"{Email(id)},{segments[rng.Next(segments.Length)]},{rng.Next(0, 200)}\n"));
        }
        return new GeneratedData(p1, p2, rows, shared);
    }

    private static string Email(int id) => string.Create(CultureInfo.InvariantCulture, $"user{id:D8}@example.org");
}
